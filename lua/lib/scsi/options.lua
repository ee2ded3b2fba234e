-- scsi/options.lua: the device options the SCSI library reads from
-- dev.conf, in the tl.schema format, so the runtime can accept them next
-- to each handler's own options.  All are optional.
return {
	vendor = { type = 'string', doc = 'INQUIRY T10 VENDOR IDENTIFICATION (8 chars; default LIO-ORG)' },
	product = { type = 'string', doc = 'INQUIRY PRODUCT IDENTIFICATION (16 chars; default "TCMU <handler>")' },
	revision = { type = 'string', doc = 'INQUIRY PRODUCT REVISION LEVEL (4 chars; default 0001)' },
	serial = { type = 'string', doc = 'unit serial number (VPD 80h); default derived from the device name' },
	wwn = { type = 'string', doc = 'NAA 6 designator, 32 hex digits (VPD 83h); default derived from the serial' },
	naa_oui = { type = 'integer', doc = 'IEEE company id of the derived NAA designator (default 0x001405)' },
	rotation_rate = { type = 'integer', doc = 'VPD B1h MEDIUM ROTATION RATE (1: non-rotating, the default)' },
	unmap_granularity = { type = 'integer', doc = 'VPD B0h OPTIMAL UNMAP GRANULARITY in blocks (default 1)' },
	unmap_zeroes = { type = 'boolean', doc = 'unmapped blocks read as zeros (LBPRZ)' },
	zero_unmap = { type = 'boolean', doc = "UNMAP writes zeros through write, even if the handler has unmap" },
	physical_block_size = { type = 'size', doc = 'physical block size reported by READ CAPACITY(16)' },
	write_cache = { type = 'boolean', doc = 'initial WCE (default: what the kernel reports)' },
	descriptor_sense = { type = 'boolean', doc = 'initial D_SENSE: descriptor-format sense data' },
	scratch_kb = { type = 'integer', doc = 'per-device scratch buffer for multi-step commands (default 1024)' },
	read_only = { type = 'boolean', doc = 'refuse writes (DATA PROTECT)' },
}
