"""Scanned pages to MNIST-style digits: decode pages, find digits, normalise them."""

from digitflow.imaging.normalize import normalize_boxes, normalize_digit, page_to_digits
from digitflow.imaging.pages import Page, load_pages, to_grey
from digitflow.imaging.segment import DigitBox, Segmentation, segment_page

__all__ = [
    "DigitBox",
    "Page",
    "Segmentation",
    "load_pages",
    "normalize_boxes",
    "normalize_digit",
    "page_to_digits",
    "segment_page",
    "to_grey",
]
