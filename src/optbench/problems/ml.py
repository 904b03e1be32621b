"""`ml`: four machine-learning objectives on real data that ships with scikit-learn.

    optbench run --problem ml-logistic --optimizer lbfgs --backend torch
    optbench bench --suite ml --optimizer lbfgs,nadam --backend torch --output ml.jsonl

  ml-logistic   L2-regularized logistic regression on breast cancer (569 × 30, 2 classes)
  ml-softmax    L2-regularized softmax (multinomial) regression on digits (1797 × 64, 10)
  ml-ridge      ridge regression on diabetes (442 × 10), declared as residuals (lm, gn)
  ml-tanh-net   a one-hidden-layer tanh network (32 units) with a softmax output, on digits

Four problems rather than one with a `model` parameter: only ridge is a sum of squares, and
`has_residuals` (what lets lm and gn run, and what `--optimizer all` goes by) belongs to a
problem, not to one of its parameters' values.

Each objective is a mean over the samples plus (λ/2)·‖weights‖², the intercepts unpenalized
— exactly scikit-learn's objectives divided by their constant factor, so that its solvers
find the same minimizer (LinearModelLoss: mean loss + ½·l2_reg_strength·‖coef‖²,
l2_reg_strength = 1/(C·n); Ridge: ‖y − Xw − b‖² + α‖w‖²):
  logistic  λ = 1e-3  ↔ LogisticRegression(C = 1/(n·λ) = 1/0.569)
  softmax   λ = 1e-3  ↔ LogisticRegression(C = 1/(n·λ) = 1/1.797), multinomial
  ridge     λ = 1e-2  ↔ Ridge(alpha = n·λ/2 = 2.21)
  tanh-net  λ = 1e-4  on both weight matrices (sklearn's MLPClassifier(alpha = n·λ) is that
            objective, but its solvers find a local minimum, not a reference)
Features are standardized over each dataset (ml_data); so is the ridge target.

Softmax's intercepts are identifiable only up to a common shift (adding c to every class's
intercept changes no probability, and the intercepts carry no penalty): the last class's is
fixed at 0, which removes that flat direction and leaves f unchanged, so the minimizer is
unique (sklearn's fit compares through b_k − b_9). The weights need no such fix: the
penalty makes them unique.

References: the unique minimizer of the three convex problems, by Newton's method or the
closed form in float64 (ml_solve, to ‖∇f‖ ≤ 1e-12), computed once per process. The tanh
network has none: its minima come in families (hidden units permute and flip sign) and a
nonconvex f has many, so its runs carry no f*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar

import numpy as np

from optbench.core import Instance, Problem, Reference
from optbench.hookspecs import hookimpl
from optbench.problems import ml_data

HIDDEN = 32  # the tanh network's hidden units
SHAPES = {"breast_cancer": (569, 30, 2), "digits": (1797, 64, 10), "diabetes": (442, 10, 1)}
"""(samples, features, classes) of each dataset: the variables are named before any data is
loaded (tests/test_ml.py checks these against the data)."""


def _cross_entropy(Z: Any, Y: Any, xp: Any) -> Any:
    """mean_i logsumexp(Z_i) − Y_i·Z_i, Y one-hot: the row's maximum is taken out of the
    exponentials, so that no logit overflows (the gradient does not depend on it)."""
    m = xp.amax(Z, axis=1, keepdims=True)
    lse = m[:, 0] + xp.log(xp.sum(xp.exp(Z - m), axis=1))
    return xp.mean(lse - xp.sum(Y * Z, axis=1))


class _MLProblem(Problem):
    dataset: ClassVar[str]
    lam: ClassVar[float]
    method: ClassVar[str] = "Newton's method in float64 to |grad f| <= 1e-12"
    params = ()

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return self.names()

    def names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def data(self) -> dict[str, np.ndarray]:
        """The arrays the objective reads: copies of the cached dataset."""
        raise NotImplementedError

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        data = self.data()
        return Instance(data=data, x0=self.start(np.random.default_rng(seed)),
                        variables=self.names())

    def start(self, rng: np.random.Generator) -> np.ndarray:
        """Small random weights (a convex problem's minimizer is reached from anywhere)."""
        return 0.01 * rng.standard_normal(len(self.names()))

    def reference(self, instance: Instance) -> Reference | None:
        x = _minimizer(self.name)
        return Reference(x=x.copy(), f=float(self.objective(x, instance.data, np)),
                         details={"dataset": self.dataset, "lambda": self.lam,
                                  "method": self.method, "sklearn": self.sklearn()})

    def sklearn(self) -> str:
        """scikit-learn's estimator of the same objective (as text, for the record)."""
        raise NotImplementedError


class Logistic(_MLProblem):
    name = "ml-logistic"
    description = ("L2-regularized logistic regression (λ=1e-3) on sklearn's breast cancer "
                   "data (569×30, standardized); f* by Newton's method")
    dataset, lam = "breast_cancer", 1e-3

    def names(self) -> tuple[str, ...]:
        return (*(f"w{j}" for j in range(1, SHAPES[self.dataset][1] + 1)), "b")

    def data(self) -> dict[str, np.ndarray]:
        X, y = ml_data.load(self.dataset)
        return {"X": np.array(X), "y": y.astype(np.float64)}

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        w, b = x[:-1], x[-1]
        z = data["X"] @ w + b
        # log(1 + e^z) − y·z, as m + log(e^−m + e^(z−m)) with m = max(z, 0): no exponent
        # above 0, so no overflow. Not max(z, 0) + log1p(e^−|z|): abs is not analytic, and
        # the complex-step backend's derivative through it was wrong (30% on the gradient).
        m = xp.maximum(z, 0.0 * z)
        loss = m + xp.log(xp.exp(-m) + xp.exp(z - m)) - data["y"] * z
        return xp.mean(loss) + 0.5 * self.lam * xp.sum(w * w)

    def sklearn(self) -> str:
        return f"LogisticRegression(C={1 / (SHAPES[self.dataset][0] * self.lam)!r})"


class Softmax(_MLProblem):
    name = "ml-softmax"
    description = ("L2-regularized softmax regression (λ=1e-3) on sklearn's digits "
                   "(1797×64, 10 classes, standardized); f* by Newton's method")
    dataset, lam = "digits", 1e-3

    def names(self) -> tuple[str, ...]:
        _, d, k = SHAPES[self.dataset]
        return (*(f"w{j}_{c}" for j in range(d) for c in range(k)),
                *(f"b{c}" for c in range(k - 1)))  # b9 = 0: see the module's note

    def data(self) -> dict[str, np.ndarray]:
        X, labels = ml_data.load(self.dataset)
        k = SHAPES[self.dataset][2]
        # lift maps the K-1 free intercepts to K (the last 0) by a product, which every
        # namespace has (no in-place write, no zeros of the backend's own dtype to make)
        return {"X": np.array(X), "Y": ml_data.one_hot(labels, k), "lift": np.eye(k - 1, k)}

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        _, d, k = SHAPES[self.dataset]
        W = xp.reshape(x[:d * k], (d, k))
        Z = data["X"] @ W + x[d * k:] @ data["lift"]
        return _cross_entropy(Z, data["Y"], xp) + 0.5 * self.lam * xp.sum(W * W)

    def sklearn(self) -> str:
        return (f"LogisticRegression(C={1 / (SHAPES[self.dataset][0] * self.lam)!r}) "
                "(multinomial; intercepts compared as b_k - b_9)")


class Ridge(_MLProblem):
    name = "ml-ridge"
    description = ("ridge regression (λ=1e-2) on sklearn's diabetes data (442×10, features "
                   "and target standardized), as residuals (lm, gn apply); f* closed form")
    dataset, lam = "diabetes", 1e-2
    has_residuals = True
    method = "closed form (numpy lstsq of the stacked residuals)"

    def names(self) -> tuple[str, ...]:
        return (*(f"w{j}" for j in range(1, SHAPES[self.dataset][1] + 1)), "b")

    def data(self) -> dict[str, np.ndarray]:
        X, y = ml_data.load(self.dataset)
        return {"X": np.array(X), "y": np.array(y)}

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        # mean(e²) + λ/2·‖w‖² = Σ r²: the n errors scaled by 1/√n, then √(λ/2)·w
        w, b = x[:-1], x[-1]
        e = (data["y"] - data["X"] @ w - b) * (1.0 / math.sqrt(SHAPES[self.dataset][0]))
        return xp.concatenate([e, math.sqrt(0.5 * self.lam) * w])

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        r = self.residuals(x, data, xp)
        return xp.sum(r * r)

    def sklearn(self) -> str:
        return f"Ridge(alpha={SHAPES[self.dataset][0] * self.lam / 2!r})"


class TanhNet(_MLProblem):
    name = "ml-tanh-net"
    description = (f"a one-hidden-layer tanh network ({HIDDEN} units, softmax output, "
                   "λ=1e-4) on sklearn's digits; no reference: its minima are not unique")
    dataset, lam = "digits", 1e-4

    def names(self) -> tuple[str, ...]:
        _, d, k = SHAPES[self.dataset]
        h = HIDDEN
        return (*(f"u{j}_{i}" for j in range(d) for i in range(h)),
                *(f"c{i}" for i in range(h)),
                *(f"v{i}_{c}" for i in range(h) for c in range(k)),
                *(f"b{c}" for c in range(k)))

    def data(self) -> dict[str, np.ndarray]:
        X, labels = ml_data.load(self.dataset)
        return {"X": np.array(X), "Y": ml_data.one_hot(labels, SHAPES[self.dataset][2])}

    def start(self, rng: np.random.Generator) -> np.ndarray:
        """LeCun's initialization: weights N(0, 1/fan-in), biases 0 (random weights break
        the symmetry between hidden units; small ones keep tanh off its flat tails)."""
        _, d, k = SHAPES[self.dataset]
        h = HIDDEN
        return np.concatenate([rng.standard_normal(d * h) / math.sqrt(d), np.zeros(h),
                               rng.standard_normal(h * k) / math.sqrt(h), np.zeros(k)])

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        _, d, k = SHAPES[self.dataset]
        h = HIDDEN
        U = xp.reshape(x[:d * h], (d, h))
        c = x[d * h:d * h + h]
        o = d * h + h
        V = xp.reshape(x[o:o + h * k], (h, k))
        hidden = xp.tanh(data["X"] @ U + c)
        Z = hidden @ V + x[o + h * k:]
        return (_cross_entropy(Z, data["Y"], xp)
                + 0.5 * self.lam * (xp.sum(U * U) + xp.sum(V * V)))

    def reference(self, instance: Instance) -> Reference | None:
        return None  # no unique minimizer (see the module's note)

    def sklearn(self) -> str:
        return f"MLPClassifier(hidden_layer_sizes=({HIDDEN},), activation='tanh', alpha=" \
               f"{SHAPES[self.dataset][0] * self.lam!r}) (a local minimum only)"


PROBLEMS = (Logistic(), Softmax(), Ridge(), TanhNet())


@cache
def _minimizer(name: str) -> np.ndarray:
    """The unique minimizer of a convex `ml` problem, once per process (softmax's Newton
    solve: about a second, most of it importing scikit-learn for the data)."""
    from optbench.problems import ml_solve  # numpy only, but not needed to list problems

    X, target = ml_data.load({"ml-logistic": "breast_cancer", "ml-softmax": "digits",
                              "ml-ridge": "diabetes"}[name])
    if name == "ml-ridge":
        x = ml_solve.ridge(X, target, Ridge.lam)
    elif name == "ml-logistic":
        x = ml_solve.newton(ml_solve.logistic_fgh(X, target.astype(np.float64), Logistic.lam),
                            X.shape[1] + 1, name)
    else:
        k = SHAPES["digits"][2]
        x = ml_solve.newton(ml_solve.softmax_fgh(X, ml_data.one_hot(target, k), Softmax.lam),
                            (X.shape[1] + 1) * k - 1, name)
    x.setflags(write=False)
    return x


@hookimpl
def register_problems(register):
    for problem in PROBLEMS:
        register(problem)


@hookimpl
def register_suites(register):
    from optbench.suites import Entry, Suite

    reason = ml_data.missing_reason()
    register(Suite("ml", "machine learning on scikit-learn's bundled data: logistic (breast "
                   "cancer), softmax (digits), ridge (diabetes), tanh network (digits)",
                   [] if reason else [Entry.of(p.name) for p in PROBLEMS], unavailable=reason))
