"""The Streamlit app, shipped inside the package: ``main.py`` is the script ``sharpseek ui`` hands
to ``streamlit run`` (found with importlib.resources), ``views/`` its pages and ``common.py``
what they share. Only these modules import streamlit.
"""
