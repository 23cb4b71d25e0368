"""Published products: a champion's forecast written in the formats users consume (GRIB2)."""
