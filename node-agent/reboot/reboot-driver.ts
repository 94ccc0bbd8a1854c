/** How the agent restarts the machine into the armed slot. */
export interface RebootDriver {
  readonly name: 'simulate' | 'command';
  /**
   * Reboots. Does not return when the machine goes down; throws RebootError when the reboot
   * could not be started or the machine is still running after the driver's time limit.
   */
  reboot(): Promise<never>;
}

/** Exit code with which the simulated system asks its supervisor for a reboot. */
export const REBOOT_EXIT_CODE = 75;
