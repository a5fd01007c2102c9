from benchmark.cli import app

app()
