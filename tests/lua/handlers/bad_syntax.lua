return { read = function( end }
