"""Reports of a run: the case record tests attach (``record``), the run collected from test
reports (``aggregate``), the delta table as text (``render``) and where it goes (``sinks``)."""
