"""Audit of operator control actions (``hftshm.audit.log``) and the durable operator controls
(``hftshm.audit.controls``): who changed what, from where, when, and whether it applied."""
