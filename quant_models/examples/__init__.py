"""Bundled example networks (network files) and the script that remakes them."""
