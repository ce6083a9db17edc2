"""Car detection: a COCO detector (`detector`, needs torch and torchvision) and the choice of one car box among its
detections (`policy`). Nothing is re-exported here, so that importing `policy` does not import torch."""
