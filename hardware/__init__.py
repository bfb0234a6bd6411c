"""PicoGrid hardware layer: LEDs (gpiozero) and INA219 meters (smbus2), each with a simulated
twin so everything runs and is tested without GPIO or I2C. No asyncio, no network.

- `ina219`, `ina219_registers`: the INA219 driver and its register map (TI SBOS448).
- `sim_ina219`: simulated INA219 chips at register level behind smbus2's calls.
- `energy`, `meter`: integer energy bookkeeping and the meters that produce `reading` payloads.
- `leds`, `led_map`: the kit's LED board and a settled interval's LED states.
- `status`: error levels and the status LED's blink codes.
- `gpio`: real or mock pin factory; the I2C bus.
- `kit_config`: the `picogrid hw` config file (TOML).

Wiring and troubleshooting: docs/wiring.md.
"""
