"""Dynamic Y-KD for Detectron2. Importing the package registers its modules with Detectron2."""
