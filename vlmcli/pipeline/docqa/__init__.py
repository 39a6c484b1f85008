"""Questions over whole documents: rank the pages by their text (retrieval.py), read the best ones with the model
(answerer.py), check each answer against the page text (grounding.py), and cite the page that was read (citation.py).
pagetexts.py finds each page's text (text layer, cache, or OCR now); answer.py runs it all.
"""
