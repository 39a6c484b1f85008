from vlmcli.cli import main

main()
