"""The report and slides builder: ``python docs/report/build.py`` (or ``python -m apps.report``).

It reads the repository's JSON results files and writes ``docs/report/generated/`` (one macro per
quoted number, the tables, the figures), then ``report.pdf`` and ``slides.pdf`` with latexmk.

==========  ==================================================================================
sources     the files read, the commands that write them, reading and checking them
formatting  numbers and names in LaTeX
names       scenario, agent and metric tokens and labels; the groups the text compares
macros      the registry of quoted numbers and ``numbers.tex``
parameters  the parameters quoted: system, scenarios, the scheduler's defaults, shipped agents
numbers     the suite's and the benchmarks' results quoted
formal_numbers  the verification's figures and the UPPAAL models'
learning    the learning benchmark's figures (optional)
traces      the robust scheduler and the trace table (robust.json; trace_results.json, optional)
sim_to_real the real server: calibrated table, fidelity, ranks (sim_to_real.json, optional)
objectives  the sensitivity study's verdicts (sensitivity.json, optional)
tables      ``tab_*.tex``, one function per table
figures     ``fig_*.pdf`` from plain data
build       :func:`compute`: all of the above from the sources; writing ``generated/``
manifest    ``generated/hashes.json``: what each figure and PDF was built from
latex       latexmk with a fixed date
cli         the command line
==========  ==================================================================================
"""
