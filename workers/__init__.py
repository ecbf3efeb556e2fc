"""RQ workers: queues, job functions, the dispatcher and the periodic jobs.

Jobs take ids and plain values, never ORM objects. Workers are ordinary RQ workers.
"""
