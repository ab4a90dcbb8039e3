"""What a job will cost: RunComfy's model info, read only where it is unambiguous."""
