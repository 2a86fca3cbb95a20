from tinyservice import main

main("tinybeta")
