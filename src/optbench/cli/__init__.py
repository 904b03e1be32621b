"""The command line (click). Heavy imports happen inside commands, when they run."""
