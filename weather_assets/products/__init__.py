"""Published products: champion/challenger decisions (``promotion``), and the champion's
forecast written in the formats users consume (``grib2``), wired as assets in ``assets``."""
