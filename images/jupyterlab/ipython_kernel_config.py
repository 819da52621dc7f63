# Every Python kernel of the image loads the hubflow launcher: %%distribute, %jobs and %job.
# IPython reads this file from {sys.prefix}/etc/ipython/, the image's Python environment.
c = get_config()  # noqa: F821 (provided by IPython when it loads this file)
c.InteractiveShellApp.extensions = ["hubflow.launcher"]
