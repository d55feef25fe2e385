"""Music helpers used around the model: metrics of generated pieces, audio rendering, piano rolls."""
