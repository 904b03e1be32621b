"""`model`: fit a model to data by least squares.

    optbench run --problem model -P "equation=y = b1*(1-exp(-b2*x))" -P data=points.csv
    optbench fit "y = b1*(1-exp(-b2*x))" --data points.csv          (the same, with statistics)

The equation relates columns of the data and parameters. Names that are columns of the data
(the CSV's header) are data; every other name is a parameter. Parameters are ordered by
`-P parameters=b1,b2` or else in natural order of their names (b1, b2, ..., b10): never by
first appearance, so that a start given as a list lands where its order says (NIST's MGH17
mentions b4 before b3).

The residual of point i is lhs − rhs, divided by σ_i with `-P sigma=COLUMN` (weights 1/σ²);
the objective is the sum of squared residuals, and the problem declares its residuals
(`has_residuals`, `residuals(x, data, xp)`) for least-squares solvers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from optbench.core import Instance, Param, Problem
from optbench.errors import UsageError
from optbench.expr import Expression, compile_equation, compile_expression
from optbench.expr.equations import sides
from optbench.hookspecs import hookimpl
from optbench.problems.datatable import Table, read_header, read_table

DATA_PREFIX = "column:"  # a column's key in the instance's data (names cannot hold ':')


def natural_key(name: str) -> tuple[Any, ...]:
    """b2 before b10: runs of digits compare as numbers (split puts text at even places and
    numbers at odd ones, so two keys always compare like with like)."""
    return tuple(int(part) if i % 2 else part
                 for i, part in enumerate(re.split(r"(\d+)", name)))


def natural_order(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(names, key=natural_key))


@dataclass(frozen=True)
class Model:
    """An equation over data columns and parameters, compiled.

    `residual` takes the parameters' values, then the columns' arrays (in the order of
    `parameters`, then `columns`); `response` is the left side alone, over the columns, when
    it holds no parameter (what R² measures the fit against), else None.
    """

    equation: str
    parameters: tuple[str, ...]
    columns: tuple[str, ...]
    residual: Expression
    response: Expression | None
    sigma: str | None = None

    @property
    def analytic(self) -> bool:
        """False where the equation calls abs: complex step cannot differentiate it (and
        says nothing: abs(z) is real, but b*abs(x - c) is complex again)."""
        def calls_abs(node: Any) -> bool:
            return ((node.op == "call" and node.value == "abs")
                    or any(calls_abs(a) for a in node.args))

        return not calls_abs(self.residual.tree)

    def residuals(self, values: Sequence[Any], columns: Sequence[Any], weights: Any,
                  xp: Any) -> Any:
        r = self.residual([*values, *columns], xp)
        return r if weights is None else r * weights


def parameter_list(value: Any, where: str) -> list[str] | None:
    """Names from "b1,b2" or ["b1", "b2"]."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value
    if (not isinstance(names, (list, tuple))
            or not all(isinstance(n, str) and n.strip() for n in names)):
        raise UsageError(f"{where}: parameters must be names, e.g. b1,b2")
    return [n.strip() for n in names]


def build_model(equation: str, header: Sequence[str], source: str,
                parameters: Sequence[str] | None = None, sigma: str | None = None) -> Model:
    """The model of `equation` over a table with columns `header`; UsageError for an
    equation naming no column or no parameter, a parameters list that does not list exactly
    the parameters, or a sigma that is not a column."""
    if not isinstance(equation, str):
        raise UsageError(f"equation={equation!r:.80} is not accepted: expected an equation "
                         "as text, e.g. \"y = b1*(1-exp(-b2*x))\"")
    names = compile_equation(equation).variables  # parses and checks it
    columns = tuple(n for n in names if n in header)
    found = [n for n in names if n not in header]
    shown = ", ".join(header)
    if not columns:
        raise UsageError(f"equation {equation!r} names no data column; the columns of "
                         f"{source} are {shown}")
    if not found:
        raise UsageError(f"equation {equation!r} has no parameter to fit: every name in it "
                         f"({', '.join(names)}) is a column of {source}")
    if parameters is None:
        order = natural_order(found)
    else:
        order = tuple(parameters)
        for name in order:
            if name in header:
                raise UsageError(f"parameters: {name!r} is a column of {source}, not a "
                                 f"parameter; the equation's parameters: {', '.join(found)}")
            if name not in found:
                raise UsageError(f"parameters: {name!r} is not in the equation; its "
                                 f"parameters: {', '.join(natural_order(found))}")
        if len(set(order)) != len(order):
            raise UsageError(f"parameters: a name is listed twice in {', '.join(order)}")
        missing = [n for n in natural_order(found) if n not in order]
        if missing:
            raise UsageError(f"parameters: {missing[0]!r} is in the equation but not in the "
                             f"list {', '.join(order)}; list every parameter")
    if sigma is not None and sigma not in header:
        raise UsageError(f"sigma={sigma!r} is not a column of {source}; its columns: {shown}")
    residual = compile_equation(equation, [*order, *columns])
    lhs, _ = sides(equation)
    response = None
    lhs_names = compile_expression(lhs).variables
    if lhs_names and all(n in columns for n in lhs_names):
        response = compile_expression(lhs, list(columns))
    return Model(equation, order, columns, residual, response, sigma)


def column_key(name: str) -> str:
    return DATA_PREFIX + name


def weights_of(table: Table, sigma: str | None) -> np.ndarray | None:
    """1/σ per point, or None; UsageError naming the first σ that is not > 0."""
    if sigma is None:
        return None
    values = table.columns[sigma]
    bad = np.flatnonzero(~(values > 0))
    if bad.size:
        i = int(bad[0])
        raise UsageError(f"{table.source}: sigma column {sigma!r} is {values[i]:g} at "
                         f"{table.where(i)}; expected standard deviations > 0")
    return 1.0 / values


def instance_data(model: Model, table: Table) -> dict[str, Any]:
    """What the objective reads: the model, its columns, the weights (and the table, for
    messages and statistics: backends convert only numpy arrays and pass the rest on)."""
    data: dict[str, Any] = {"_model": model, "_table": table}
    for name in model.columns:
        data[column_key(name)] = np.array(table.columns[name], dtype=np.float64)  # writable:
        # torch warns about read-only arrays
    weights = weights_of(table, model.sigma)
    if weights is not None:
        data["_weights"] = weights
    return data


class ModelProblem(Problem):
    name = "model"
    description = ("fit a model to data, e.g. -P \"equation=y = b1*(1-exp(-b2*x))\" "
                   "-P data=points.csv")
    params = (
        Param("equation", "str", None, "lhs = rhs over data columns and parameters"),
        Param("data", "path", None, "a CSV file with a header naming its columns"),
        Param("sigma", "str", None, "a column of standard deviations: residuals / sigma"),
        Param("parameters", "str", None, "the order of the parameters, e.g. b1,b2 "
              "[default: natural order, b1, b2, ..., b10]"),
    )
    has_residuals: ClassVar[bool] = True
    pointwise_residuals: ClassVar[bool] = True  # r_j from data point j alone

    def __init__(self, table: Table | None = None) -> None:
        # The Python API hands data in memory (a dict of arrays, a DataFrame) as a Table;
        # the registered instance reads -P data=FILE.
        self.table = table

    def _header(self, params: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
        if self.table is not None:
            return self.table.names, self.table.source
        path = self._path(params)
        return read_header(path), f"data={path}"

    def _path(self, params: Mapping[str, Any]) -> str:
        if params.get("data") is None:
            raise UsageError("model needs -P data=FILE.csv (a CSV file with a header) and "
                             "-P \"equation=y = b1*(1-exp(-b2*x))\"")
        return params["data"]

    def model(self, params: Mapping[str, Any]) -> Model:
        if params.get("equation") is None:
            raise UsageError("model needs -P \"equation=y = b1*(1-exp(-b2*x))\" (names of "
                             "data columns and of parameters)")
        header, source = self._header(params)
        return build_model(params["equation"], header, source,
                           parameter_list(params.get("parameters"), "model"),
                           params.get("sigma"))

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return self.model(params).parameters

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        model = self.model(params)
        table = self.table if self.table is not None else read_table(self._path(params))
        p = len(model.parameters)
        if table.n_rows < p:
            raise UsageError(f"{table.source}: {table.n_rows} points, fewer than the "
                             f"{p} parameters ({', '.join(model.parameters)}); expected at "
                             "least one point per parameter")
        # A start of the right sign and order for the common rates and amplitudes; --x0
        # (fit: b1=...,b2=...) is the way to a start of the model's own scale.
        x0 = np.random.default_rng(seed).uniform(0.5, 1.5, p)
        return Instance(data=instance_data(model, table), x0=x0, variables=model.parameters)

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        model: Model = data["_model"]
        # x[i]: a number, or a row of one value per point (pointwise_residuals).
        values = [x[i] for i in range(len(model.parameters))]
        columns = [data[column_key(c)] for c in model.columns]
        return model.residuals(values, columns, data.get("_weights"), xp)

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        r = self.residuals(x, data, xp)
        return xp.sum(r * r)


@hookimpl
def register_problems(register):
    register(ModelProblem())
