"""The engine as a background service per state folder, and its clients."""
