"""A physically coherent simulated site served as real Modbus devices, and a simple publisher."""
