"""One video on many processes (GPUs): CFG-parallel x context parallelism, through torch.distributed
and diffusers.

``degrees``  how N ranks split a video (CFG-parallel x ring x Ulysses) and the checks made before loading
``launch``   ``--nproc N``: the same command as N ranks under ``torch.distributed.run`` on the loopback
``runtime``  one rank: process group with timeouts, mesh, the pipeline hooks (text from rank 0, decode
             on rank 0), the watchdog
``velocity`` the sampler's model on one rank: its guidance branch, one all-gather per step
``cli``      the ``pusa generate`` options and rank start-up

Every rank runs the same sampler loop with the same noise; rank 0 alone encodes the text (and
broadcasts it), decodes, writes and prints. See README "Many GPUs".
"""
