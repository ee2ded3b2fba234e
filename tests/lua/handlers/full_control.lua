-- Takes every CDB itself except INQUIRY, which it leaves to the library.
local scsi = require 'scsi'
return {
  handle = function(dev, cmd)
    if cmd.opcode == 0x12 then return scsi.NOT_HANDLED end
    if cmd.opcode == 0x00 then          -- TEST UNIT READY: say BUSY
      cmd.status = 0x08
      dev:complete(cmd)
      return
    end
    cmd.status = 0
    dev:complete(cmd)
  end,
}
