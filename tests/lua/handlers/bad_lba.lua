-- Fails every READ and WRITE with a medium error naming LBA 1234.
local scsi = require 'scsi'
return {
  read = function() return nil, scsi.sense.MEDIUM_ERROR, 1234 end,
  write = function() return nil, scsi.sense.WRITE_ERROR, 1234 end,
}
