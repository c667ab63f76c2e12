"""Building blocks shared by encoders and predictors."""
