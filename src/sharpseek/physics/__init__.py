"""The physics contract of design/SCIENCE.md: a magnetogram's physical parameters, arrays in and
numbers out (model space and native scale). The bottom layer: it imports nothing of sharpseek."""
