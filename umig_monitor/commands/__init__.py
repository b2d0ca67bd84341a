"""CLI commands that replace the guide's quick-reference scripts. Each reads the running daemon's
API when it answers, and storage (or the targets) directly when it does not."""
