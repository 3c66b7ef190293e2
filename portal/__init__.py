"""The portal: Meet Now, calendar rooms and web-conferencing accounts for companies."""
