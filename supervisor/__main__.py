from .init import main

main()
