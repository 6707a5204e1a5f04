"""`tracker ui`: the project's own board, one module per view (runs, run, compare, groups, sweep), server-rendered
pages from templates/ with a little JavaScript (static/board.js) and plotly.js from the installed plotly package.
See docs/ui.md."""
