"""Datasets: the embedded synthetic faces and the containers every loader returns."""
