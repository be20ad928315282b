# shellcheck shell=bash
# A fake XDNA1 NPU for the node: a sysfs tree and a devfs tree under the node's
# state directory, laid out as the kernel lays them out (relative symlinks for
# class/accel, `device` and `driver`; a real character device made with mknod),
# for the real device plugin to find through its host mounts
# (devicePlugin.hostPaths in the chart). Nothing under /sys or /dev is touched.
#
#   $FAKE_NPU_ROOT/sys/devices/pci0000:00/<pci>/{vendor,device,class,revision,numa_node,fw_version,vbnv,device_type}
#   $FAKE_NPU_ROOT/sys/devices/pci0000:00/<pci>/driver -> ../../../bus/pci/drivers/amdxdna
#   $FAKE_NPU_ROOT/sys/devices/pci0000:00/<pci>/accel/accel0/{dev,device -> ../..}
#   $FAKE_NPU_ROOT/sys/class/accel/accel0 -> ../../devices/pci0000:00/<pci>/accel/accel0
#   $FAKE_NPU_ROOT/dev/accel/accel0   (c 261 0, 0600 root:root, as amdxdna makes it)

FAKE_NPU_ROOT=$E2E_ROOT/npu
FAKE_NPU_PCI=0000:c4:00.1
FAKE_NPU_FIRMWARE=1.5.5.391
ACCEL_MAJOR=261

# fake_npu_make builds the trees with one NPU, accel0 (anew: a scenario may run after another).
fake_npu_make() {
  local sys=$FAKE_NPU_ROOT/sys pci=$FAKE_NPU_ROOT/sys/devices/pci0000:00/$FAKE_NPU_PCI
  rm -rf "${FAKE_NPU_ROOT:?}/sys" "${FAKE_NPU_ROOT:?}/dev"
  mkdir -p "$pci/accel/accel0" "$sys/class/accel" "$sys/bus/pci/drivers/amdxdna" "$FAKE_NPU_ROOT/dev/accel"
  printf '0x1022\n' >"$pci/vendor"
  printf '0x1502\n' >"$pci/device"
  printf '0x118000\n' >"$pci/class"
  printf '0x00\n' >"$pci/revision"
  printf -- '-1\n' >"$pci/numa_node"
  printf '%s\n' "$FAKE_NPU_FIRMWARE" >"$pci/fw_version"
  printf 'RyzenAI-npu1\n' >"$pci/vbnv"
  printf '1\n' >"$pci/device_type"
  ln -s ../../../bus/pci/drivers/amdxdna "$pci/driver"
  printf '%d:0\n' "$ACCEL_MAJOR" >"$pci/accel/accel0/dev"
  ln -s ../.. "$pci/accel/accel0/device"
  ln -s "../../devices/pci0000:00/$FAKE_NPU_PCI/accel/accel0" "$sys/class/accel/accel0"
  fake_npu_node_add
}

# fake_npu_node_add creates the character device accel0 (as udev would).
fake_npu_node_add() { mknod -m 0600 "$FAKE_NPU_ROOT/dev/accel/accel0" c "$ACCEL_MAJOR" 0; }

# fake_npu_node_remove deletes the character device accel0 (as a driver unload would).
fake_npu_node_remove() { rm -f "$FAKE_NPU_ROOT/dev/accel/accel0"; }
