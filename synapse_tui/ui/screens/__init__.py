"""The dashboard's screens and modal dialogs."""
