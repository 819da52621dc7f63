"""The Kubeflow backend of the jobs service: jobs as Trainer v2 TrainJobs or Training Operator v1
PyTorchJobs/TFJobs (see docs/jobs-kubernetes.md)."""
