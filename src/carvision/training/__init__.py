"""Training: a LightningModule over a timm backbone, its data module, losses and checkpoint loading."""
