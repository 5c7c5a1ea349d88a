"""What the notebooks (the book's chapters) use on top of the library, and nothing else does.

==================  ====================================================================
``notebook``        ``obtain(recipe)``: a published model, or one trained on the smoke budget
``recipes``         the named training runs behind the notebooks and ``pretrained/``
``plots2d``         densities, fields and analyses of 2-D models (8 Gaussians)
``mnist_figures``   the MNIST chapter's figures and tables
``interactive``     the widgets of the interactive-sampling chapter and their logic
==================  ====================================================================
"""
