from s2ikit.cli import main

main()
