from kaohe.startup import main

main()
