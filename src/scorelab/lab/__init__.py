"""`scorelab lab`: a local web page to move a policy's knobs and see, beside the unchanged policy on the same
synthetic people, who is sanctioned (and wrongly) by group, the chilling of speech, the score distribution
and the compliance verdicts that flip. See docs/lab.md.

- knobs.py: which values of a scenario are knobs, their ranges, checking posted values
- views.py: the two runs (common random numbers), their figures, saving a view as a run directory
- server.py: the standard library's HTTP server with a JSON API; static/: the page (plotly served locally)
"""
