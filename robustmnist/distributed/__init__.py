"""Running bench's (model × set) grid on more than one machine. Optional: needs the ``ray`` extra."""
