from eqliscsi.cli.main import main

main()
