"""The long-running daemon: supervisors, control API, health, systemd integration."""
