from astraea.cli.main import main

main()
