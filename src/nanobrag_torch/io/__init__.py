"""File readers and writers: they only convert between files and arrays."""
