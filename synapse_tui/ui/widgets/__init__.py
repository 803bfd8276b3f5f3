"""Small single-purpose widgets of the dashboard, one per module."""
