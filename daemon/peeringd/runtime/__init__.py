"""The runtime: the reconcile pass, the daemon around it, the CLI and the embedded lab."""
