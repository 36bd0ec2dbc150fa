"""The active-learning loop: query strategies (modAL where it works), the loop's state in MongoDB (``state``) and
the resumable round state machine (``rounds``)."""
