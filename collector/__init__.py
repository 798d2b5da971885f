"""Host-side collection shared by the CLI (``snapshot --local``) and the agent container image.

This package knows hosts (files under /proc, /sys, /etc, commands such as ``nvidia-smi``) and reads the
Kubernetes API when it runs inside a cluster. It never deploys anything.
"""
