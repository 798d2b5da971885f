from kubectl_aicr.cli import main

main()
