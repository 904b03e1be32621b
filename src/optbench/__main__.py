from optbench.cli.main import main

main()
