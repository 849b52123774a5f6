"""Corrections that teach: what a batch needs reviewed, the answers people give, the
dataset they become, and the fine-tuned models trained on it.

``items``     what a scoring batch needs a person to look at, largest doubt first
``record``    one correction, saved to the store the moment it is given
``exchange``  corrections out to a CSV and back in, for teams that correct elsewhere
``dataset``   every correction as a content-addressed Parquet dataset, with a held-out part
``web``       the review page's server (``digitflow review``); ``page`` the page
``adapt``     the line reader champion fine-tuned on the corrections, as a new candidate
"""
