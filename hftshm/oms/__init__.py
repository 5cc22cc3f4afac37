"""Order management: order state machine, in-memory order table, write-behind audit trail."""
