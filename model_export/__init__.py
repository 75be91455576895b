"""Model building: song synthesis, training, int8 export with manifests, evaluation."""
